"""Task functions of the subcommands other than ``train`` (each takes the composed config)."""
