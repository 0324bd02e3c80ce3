"""The only package that touches ``nn.Module`` internals (copies, hooks, layers, objectives)."""
