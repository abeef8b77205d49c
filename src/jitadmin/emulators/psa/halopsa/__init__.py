"""HaloPSA emulator."""
