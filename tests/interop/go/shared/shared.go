// Package shared holds what the interop host (cmd/kvhost) and plugin
// (cmd/kvplugin) agree on: the KV interface, its go-plugin GRPCPlugin and the
// handshake, which tests configure through environment variables.
//
// Host and plugin read the same variables (the host's environment reaches the
// plugin, go-plugin passes it through):
//
//	KV_COOKIE_KEY    magic cookie key       (default BASIC_PLUGIN)
//	KV_COOKIE_VALUE  magic cookie value     (default hello)
//	KV_VERSIONS      app protocol versions, comma-separated (default 1)
//
// Because the plugin inherits the host's environment, the plugin first looks
// at KV_PLUGIN_COOKIE_KEY, KV_PLUGIN_COOKIE_VALUE and KV_PLUGIN_VERSIONS, so a
// test can give host and plugin different handshakes (wrong cookie, version
// mismatch).
package shared

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"gointerop.example/kv/kvpb"
)

// PluginName is the name under which the KV plugin is dispensed (go-plugin's
// examples/grpc uses the same).
const PluginName = "kv_grpc"

// Default handshake: go-plugin's examples/grpc.
const (
	DefaultCookieKey   = "BASIC_PLUGIN"
	DefaultCookieValue = "hello"
	DefaultVersions    = "1"
)

// KV is the interface the host programs against.
type KV interface {
	Put(key string, value []byte) error
	Get(key string) ([]byte, error)
}

// KVGRPCPlugin is the go-plugin GRPCPlugin for KV. Impl is only needed on the
// plugin side.
type KVGRPCPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	Impl KV
}

// GRPCServer registers the KV service on the plugin's gRPC server.
func (p *KVGRPCPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	kvpb.RegisterKVServer(s, &grpcServer{impl: p.Impl})
	return nil
}

// GRPCClient returns the host-side KV implementation over conn.
func (p *KVGRPCPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, conn *grpc.ClientConn) (interface{}, error) {
	return &GRPCClient{client: kvpb.NewKVClient(conn)}, nil
}

// GRPCClient is the host-side KV over gRPC.
type GRPCClient struct {
	client kvpb.KVClient
}

// Put stores value under key.
func (c *GRPCClient) Put(key string, value []byte) error {
	_, err := c.client.Put(context.Background(), &kvpb.PutRequest{Key: key, Value: value})
	return err
}

// Get returns the value stored under key (gRPC NotFound if there is none).
func (c *GRPCClient) Get(key string) ([]byte, error) {
	resp, err := c.client.Get(context.Background(), &kvpb.GetRequest{Key: key})
	if err != nil {
		return nil, err
	}
	return resp.Value, nil
}

type grpcServer struct {
	impl KV
}

func (s *grpcServer) Put(_ context.Context, req *kvpb.PutRequest) (*kvpb.Empty, error) {
	return &kvpb.Empty{}, s.impl.Put(req.Key, req.Value)
}

func (s *grpcServer) Get(_ context.Context, req *kvpb.GetRequest) (*kvpb.GetResponse, error) {
	v, err := s.impl.Get(req.Key)
	if err != nil {
		return nil, err
	}
	return &kvpb.GetResponse{Value: v}, nil
}

// Handshake is the handshake read from the environment.
type Handshake struct {
	Config   plugin.HandshakeConfig
	Versions []int
}

// VersionedPlugins maps every configured version to a plugin set holding one
// KVGRPCPlugin with the given implementation (nil on the host side).
func (h Handshake) VersionedPlugins(impl KV) map[int]plugin.PluginSet {
	m := make(map[int]plugin.PluginSet, len(h.Versions))
	for _, v := range h.Versions {
		m[v] = plugin.PluginSet{PluginName: &KVGRPCPlugin{Impl: impl}}
	}
	return m
}

// HostHandshake reads KV_COOKIE_KEY, KV_COOKIE_VALUE and KV_VERSIONS.
func HostHandshake() (Handshake, error) {
	return handshake("KV_")
}

// PluginHandshake reads KV_PLUGIN_* first, then the host's KV_* variables.
func PluginHandshake() (Handshake, error) {
	return handshake("KV_PLUGIN_", "KV_")
}

func handshake(prefixes ...string) (Handshake, error) {
	lookup := func(name, def string) string {
		for _, p := range prefixes {
			if v, ok := os.LookupEnv(p + name); ok {
				return v
			}
		}
		return def
	}
	versions, err := ParseVersions(lookup("VERSIONS", DefaultVersions))
	if err != nil {
		return Handshake{}, err
	}
	return Handshake{
		Config: plugin.HandshakeConfig{
			MagicCookieKey:   lookup("COOKIE_KEY", DefaultCookieKey),
			MagicCookieValue: lookup("COOKIE_VALUE", DefaultCookieValue),
		},
		Versions: versions,
	}, nil
}

// ParseVersions parses a comma-separated list of positive integers.
func ParseVersions(s string) ([]int, error) {
	var out []int
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		v, err := strconv.Atoi(part)
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("invalid protocol version %q in %q", part, s)
		}
		out = append(out, v)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no protocol versions in %q", s)
	}
	return out, nil
}
