"""One parser per kind of deployment file, each from file text to ``Workload`` facts. Pure."""
