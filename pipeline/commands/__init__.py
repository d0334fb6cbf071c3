"""CLI commands, one module per stage; each has `register(app)` and stays thin: parse options,
call one library function, print the result."""
