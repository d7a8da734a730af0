"""Host drivers for the boards' accelerator overlays (importable without the board's Python
packages: those are imported when a board is opened)."""
