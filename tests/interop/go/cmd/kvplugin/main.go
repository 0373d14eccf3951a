// Command kvplugin is a go-plugin 1.0.1 gRPC KV plugin with an in-memory
// store, for hosts under test (the Go kvhost and the Python host).
//
// Handshake: see package shared (KV_PLUGIN_* / KV_* variables; default cookie
// BASIC_PLUGIN=hello, version 1). KV_PLUGIN_LOG_LEVEL sets the level of the
// hclog JSON written to the real stderr (default trace, like go-plugin).
//
// After plugin.Serve swaps os.Stdout/os.Stderr for pipes that a 1.0.1 host
// never drains, nothing here writes to them (a full pipe would block the plugin).
package main

import (
	"fmt"
	"os"
	"sync"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"gointerop.example/kv/shared"
)

type store struct {
	mu     sync.Mutex
	values map[string][]byte
}

func (s *store) Put(key string, value []byte) error {
	v := make([]byte, len(value))
	copy(v, value)
	s.mu.Lock()
	s.values[key] = v
	s.mu.Unlock()
	return nil
}

func (s *store) Get(key string) ([]byte, error) {
	s.mu.Lock()
	v, ok := s.values[key]
	s.mu.Unlock()
	if !ok {
		return nil, status.Errorf(codes.NotFound, "no value for key %q", key)
	}
	return v, nil
}

func main() {
	hs, err := shared.PluginHandshake()
	if err != nil {
		fmt.Fprintf(os.Stderr, "kvplugin: %s\n", err)
		os.Exit(1)
	}
	level := hclog.Trace
	if s := os.Getenv("KV_PLUGIN_LOG_LEVEL"); s != "" {
		level = hclog.LevelFromString(s)
		if level == hclog.NoLevel {
			fmt.Fprintf(os.Stderr, "kvplugin: invalid KV_PLUGIN_LOG_LEVEL %q\n", s)
			os.Exit(1)
		}
	}
	logger := hclog.New(&hclog.LoggerOptions{
		Level:      level,
		Output:     os.Stderr, // the real stderr: captured before Serve swaps it
		JSONFormat: true,
	})
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig:  hs.Config,
		VersionedPlugins: hs.VersionedPlugins(&store{values: map[string][]byte{}}),
		GRPCServer:       plugin.DefaultGRPCServer,
		Logger:           logger,
	})
}
