"""ConnectWise PSA (Manage) emulator."""
