"""Test harness, one module per concern: `stack` (paths, tools, the local gunicorn stack),
`docker` (the Docker CLI and containers), `cluster` (the kind cluster and its steps)."""
