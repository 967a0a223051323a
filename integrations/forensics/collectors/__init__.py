"""One module per collector family; each declares its spec model and a `collect` generator."""
