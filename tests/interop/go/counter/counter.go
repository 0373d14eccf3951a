// Package counter holds what the interop counter host (cmd/counterhost) and
// plugin (cmd/counterplugin) agree on: the protocol of go-plugin's
// examples/bidirectional, where every Put makes the plugin call back into the
// host through the GRPCBroker.
//
// The host serves an AddHelper on a brokered id (AcceptAndServe) and passes the
// id in PutRequest.add_server; the plugin dials that id (Dial) and stores
// AddHelper.Sum(current, value). Handshake: BASIC_PLUGIN=hello, version 1.
package counter

import (
	"context"
	"sync"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"gointerop.example/kv/counterpb"
)

// PluginName is the name under which the counter plugin is dispensed.
const PluginName = "counter"

// Handshake is go-plugin's examples/bidirectional handshake.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  1,
	MagicCookieKey:   "BASIC_PLUGIN",
	MagicCookieValue: "hello",
}

// AddHelper is what the host offers the plugin for callbacks.
type AddHelper interface {
	Sum(a, b int64) (int64, error)
}

// Counter is the plugin's interface; Put calls back into the host's AddHelper.
type Counter interface {
	Put(key string, value int64, adder AddHelper) error
	Get(key string) (int64, error)
}

// GRPCPlugin is the go-plugin GRPCPlugin for Counter (Impl: plugin side only).
type GRPCPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	Impl Counter
}

// GRPCServer registers the Counter service, which dials the host's AddHelper.
func (p *GRPCPlugin) GRPCServer(broker *plugin.GRPCBroker, s *grpc.Server) error {
	counterpb.RegisterCounterServer(s, &counterServer{impl: p.Impl, broker: broker})
	return nil
}

// GRPCClient returns the host-side Counter, which serves AddHelper per Put.
func (p *GRPCPlugin) GRPCClient(_ context.Context, broker *plugin.GRPCBroker, conn *grpc.ClientConn) (interface{}, error) {
	return &Client{client: counterpb.NewCounterClient(conn), broker: broker}, nil
}

// Client is the host side of Counter.
type Client struct {
	client counterpb.CounterClient
	broker *plugin.GRPCBroker
}

// Put serves adder on a fresh broker id for the duration of the call.
func (c *Client) Put(key string, value int64, adder AddHelper) error {
	served := &brokeredServer{}
	id := c.broker.NextId()
	go c.broker.AcceptAndServe(id, served.make(adder))
	defer served.stop()
	_, err := c.client.Put(context.Background(), &counterpb.PutRequest{AddServer: id, Key: key, Value: value})
	return err
}

// Get returns the count stored under key.
func (c *Client) Get(key string) (int64, error) {
	resp, err := c.client.Get(context.Background(), &counterpb.GetRequest{Key: key})
	if err != nil {
		return 0, err
	}
	return resp.Value, nil
}

// brokeredServer lets Put stop the server AcceptAndServe creates in its goroutine.
type brokeredServer struct {
	mu      sync.Mutex
	server  *grpc.Server
	stopped bool
}

func (b *brokeredServer) make(adder AddHelper) func([]grpc.ServerOption) *grpc.Server {
	return func(opts []grpc.ServerOption) *grpc.Server {
		s := grpc.NewServer(opts...)
		counterpb.RegisterAddHelperServer(s, &addHelperServer{impl: adder})
		b.mu.Lock()
		defer b.mu.Unlock()
		b.server = s
		if b.stopped {
			s.Stop()
		}
		return s
	}
}

func (b *brokeredServer) stop() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.stopped = true
	if b.server != nil {
		b.server.Stop()
	}
}

type addHelperServer struct {
	impl AddHelper
}

func (s *addHelperServer) Sum(_ context.Context, req *counterpb.SumRequest) (*counterpb.SumResponse, error) {
	r, err := s.impl.Sum(req.A, req.B)
	if err != nil {
		return nil, err
	}
	return &counterpb.SumResponse{R: r}, nil
}

type addHelperClient struct {
	client counterpb.AddHelperClient
}

func (c *addHelperClient) Sum(a, b int64) (int64, error) {
	resp, err := c.client.Sum(context.Background(), &counterpb.SumRequest{A: a, B: b})
	if err != nil {
		return 0, err
	}
	return resp.R, nil
}

type counterServer struct {
	impl   Counter
	broker *plugin.GRPCBroker
}

func (s *counterServer) Put(_ context.Context, req *counterpb.PutRequest) (*counterpb.Empty, error) {
	conn, err := s.broker.Dial(req.AddServer)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	adder := &addHelperClient{client: counterpb.NewAddHelperClient(conn)}
	return &counterpb.Empty{}, s.impl.Put(req.Key, req.Value, adder)
}

func (s *counterServer) Get(_ context.Context, req *counterpb.GetRequest) (*counterpb.GetResponse, error) {
	v, err := s.impl.Get(req.Key)
	if err != nil {
		return nil, err
	}
	return &counterpb.GetResponse{Value: v}, nil
}
