"""Network backends (-netdev, -nic, -net): user-mode networking with libslirp."""
