"""GRPCBroker, used by both sides: the broker and its connections."""
