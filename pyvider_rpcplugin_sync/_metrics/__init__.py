"""Call metrics on both sides: the hook (``CallMetrics``) and an in-memory one
(``CallStats``), and the grpc interceptors that feed a hook, installed only when
``HostConfig(metrics=)`` or ``PluginServer(metrics=)`` asks for them."""
