"""Dataset tools (``openfer dataset ...``): dataset cards, label issues, pseudo-labels and subgroup audits
on the data formats ``openfer evaluate`` reads."""
