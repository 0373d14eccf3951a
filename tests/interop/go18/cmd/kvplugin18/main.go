// Command kvplugin18 is a go-plugin 1.8 KV plugin (go-plugin's examples/grpc
// protocol) with an in-memory store. Handshake BASIC_PLUGIN=hello, version 1.
package main

import (
	"context"
	"os"
	"sync"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"gointerop.example/go18/kit"
	"gointerop.example/go18/kv"
	"gointerop.example/go18/kvpb"
)

type store struct {
	kvpb.UnimplementedKVServer
	mu     sync.Mutex
	values map[string][]byte
}

func (s *store) Put(_ context.Context, req *kvpb.PutRequest) (*kvpb.Empty, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.values[req.Key] = append([]byte(nil), req.Value...)
	return &kvpb.Empty{}, nil
}

func (s *store) Get(_ context.Context, req *kvpb.GetRequest) (*kvpb.GetResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.values[req.Key]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "no value for key %q", req.Key)
	}
	return &kvpb.GetResponse{Value: v}, nil
}

func main() {
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: kit.Handshake,
		Plugins:         plugin.PluginSet{kv.PluginName: &kv.Plugin{Impl: &store{values: map[string][]byte{}}}},
		GRPCServer:      plugin.DefaultGRPCServer,
		Logger:          hclog.New(&hclog.LoggerOptions{Level: hclog.Debug, Output: os.Stderr, JSONFormat: true}),
	})
}
