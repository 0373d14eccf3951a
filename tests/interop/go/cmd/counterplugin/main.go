// Command counterplugin is a go-plugin 1.0.1 counter plugin (the protocol of
// go-plugin's examples/bidirectional): Put(add_server, key, value) dials the
// host's brokered AddHelper and stores Sum(current, value). Counts live in
// memory. Under AutoMTLS, go-plugin 1.0.1 cannot dial a host-served brokered
// connection (go-plugin issue 109, fixed in 1.4.4): Put then fails.
//
// After plugin.Serve swaps os.Stdout/os.Stderr for pipes that a 1.0.1 host
// never drains, nothing here writes to them (a full pipe would block the plugin).
package main

import (
	"os"
	"sync"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"gointerop.example/kv/counter"
)

type counts struct {
	mu     sync.Mutex
	values map[string]int64
}

func (c *counts) Put(key string, value int64, adder counter.AddHelper) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	sum, err := adder.Sum(c.values[key], value)
	if err != nil {
		return err
	}
	c.values[key] = sum
	return nil
}

func (c *counts) Get(key string) (int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.values[key], nil
}

func main() {
	logger := hclog.New(&hclog.LoggerOptions{
		Name:       "counterplugin",
		Level:      hclog.Trace,
		Output:     os.Stderr, // the real stderr, saved before Serve swaps it
		JSONFormat: true,
	})
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: counter.Handshake,
		Plugins: plugin.PluginSet{
			counter.PluginName: &counter.GRPCPlugin{Impl: &counts{values: map[string]int64{}}},
		},
		GRPCServer: plugin.DefaultGRPCServer,
		Logger:     logger,
	})
}
