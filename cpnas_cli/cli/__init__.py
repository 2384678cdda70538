"""The `cpnas` command line: one module per subcommand; the work happens in the library."""
