"""An editor and a corruption written only against factlocate's documented contracts: the tests register
them (one registry line each) and run them through every path a shipped editor or corruption takes."""
