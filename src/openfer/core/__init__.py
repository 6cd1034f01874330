"""Pure numpy computation: no I/O, no models, no global state."""
