"""PSA emulators (ConnectWise, Autotask, HaloPSA) and the pieces they share (``common``)."""
