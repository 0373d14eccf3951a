// Command counterplugin18 is a go-plugin 1.8 counter plugin (go-plugin's
// examples/bidirectional protocol, plus proto.HelperSource: an AddHelper the
// plugin serves on a broker id for the host to dial). Handshake
// BASIC_PLUGIN=hello, version 1.
package main

import (
	"os"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"gointerop.example/go18/counter"
	"gointerop.example/go18/kit"
)

func main() {
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: kit.Handshake,
		Plugins:         plugin.PluginSet{counter.PluginName: &counter.Plugin{}},
		GRPCServer:      plugin.DefaultGRPCServer,
		Logger:          hclog.New(&hclog.LoggerOptions{Level: hclog.Debug, Output: os.Stderr, JSONFormat: true}),
	})
}
