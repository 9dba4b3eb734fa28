"""A fake Netskope tenant: a real HTTP server that answers like a tenant's REST API, for tests,
the demo and benchmarks. Its state lives in memory only (see :mod:`fake_tenant.domain`)."""
