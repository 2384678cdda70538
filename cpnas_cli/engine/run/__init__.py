"""What every long run needs: checkpoints, Ctrl-C, devices, tensors of state, the shared run loop."""
