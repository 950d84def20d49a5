"""Tools over the library: validate (contributors), verify (maintainers), evaluation, scaffold, gaps."""
