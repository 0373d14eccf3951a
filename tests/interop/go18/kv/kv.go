// Package kv is go-plugin's examples/grpc KV protocol (service proto.KV) as a
// go-plugin 1.8 GRPCPlugin, for cmd/kvhost18 and cmd/kvplugin18.
package kv

import (
	"context"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"gointerop.example/go18/kvpb"
)

// PluginName is the dispense name (the same as go-plugin's examples/grpc).
const PluginName = "kv_grpc"

// Plugin is the KV GRPCPlugin; Impl is only needed on the plugin side.
type Plugin struct {
	plugin.NetRPCUnsupportedPlugin
	Impl kvpb.KVServer
}

// GRPCServer registers the KV service on the plugin's gRPC server.
func (p *Plugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	kvpb.RegisterKVServer(s, p.Impl)
	return nil
}

// GRPCClient returns the generated KV client over the plugin connection.
func (p *Plugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, conn *grpc.ClientConn) (interface{}, error) {
	return kvpb.NewKVClient(conn), nil
}
