"""The user interface: the command line, its commands, the menu, progress display."""
