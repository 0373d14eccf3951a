// Command kvhost18 is a go-plugin 1.8 host for KV plugins (go-plugin's
// examples/grpc protocol), configured as package kit describes.
//
// Usage: kvhost18 OP...   with OP one of:
//
//	put KEY VALUE   store VALUE
//	get KEY         read it back ("value" in the result)
//	fill KEY N      store N bytes, every byte value in turn (i % 256)
//	check KEY N     read KEY and compare it with what fill KEY N stored ("verified")
//	pending KEY     start a Get of KEY and go on without waiting: Kill() then meets
//	                it in flight ("code" is recorded when it ends, before the report)
//
// One plugin session: Start, Client, Ping, Dispense, every OP in order, Kill.
// Prints one JSON line: kit's report plus "results", one entry per OP with its
// gRPC status code ("OK", "NotFound", ...). Exit 0 when the session started (OP
// failures are in the results), else 1.
package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc/status"

	"gointerop.example/go18/kit"
	"gointerop.example/go18/kv"
	"gointerop.example/go18/kvpb"
)

func main() {
	h, err := kit.NewHost(plugin.PluginSet{kv.PluginName: &kv.Plugin{}})
	if err != nil {
		fmt.Fprintf(os.Stderr, "kvhost18: %s\n", err)
		os.Exit(2)
	}
	os.Exit(h.Finish(run(h, os.Args[1:])))
}

func run(h *kit.Host, args []string) error {
	raw, err := h.Connect(kv.PluginName)
	if err != nil {
		return err
	}
	client := raw.(kvpb.KVClient)
	var results []map[string]interface{}
	h.Report["results"] = &results
	for len(args) > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		r := map[string]interface{}{"op": args[0]}
		switch {
		case args[0] == "put" && len(args) >= 3:
			r["key"] = args[1]
			_, err = client.Put(ctx, &kvpb.PutRequest{Key: args[1], Value: []byte(args[2])})
			args = args[3:]
		case args[0] == "get" && len(args) >= 2:
			r["key"] = args[1]
			var resp *kvpb.GetResponse
			resp, err = client.Get(ctx, &kvpb.GetRequest{Key: args[1]})
			if err == nil {
				r["value"] = string(resp.Value)
			}
			args = args[2:]
		case (args[0] == "fill" || args[0] == "check") && len(args) >= 3:
			r["key"] = args[1]
			var n int
			if n, err = strconv.Atoi(args[2]); err != nil || n < 0 {
				cancel()
				return fmt.Errorf("bad size %q", args[2])
			}
			want := pattern(n)
			if args[0] == "fill" {
				_, err = client.Put(ctx, &kvpb.PutRequest{Key: args[1], Value: want})
			} else {
				var resp *kvpb.GetResponse
				resp, err = client.Get(ctx, &kvpb.GetRequest{Key: args[1]})
				if err == nil {
					r["verified"] = bytes.Equal(resp.Value, want)
					r["size"] = len(resp.Value)
				}
			}
			args = args[3:]
		case args[0] == "pending" && len(args) >= 2:
			r["key"] = args[1]
			started := make(chan struct{})
			h.Pending.Add(1)
			go func(r map[string]interface{}, key string) {
				defer h.Pending.Done()
				defer cancel()
				close(started)
				_, err := client.Get(ctx, &kvpb.GetRequest{Key: key})
				r["code"] = status.Code(err).String()
			}(r, args[1])
			<-started
			results = append(results, r)
			args = args[2:]
			continue
		default:
			cancel()
			return fmt.Errorf("bad operation %q", args)
		}
		cancel()
		r["code"] = status.Code(err).String()
		if err != nil {
			r["error"] = status.Convert(err).Message()
		}
		results = append(results, r)
	}
	return nil
}

// pattern is n bytes cycling through every byte value.
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i % 256)
	}
	return b
}
