// Command counterhost18 is a go-plugin 1.8 host for counter plugins (go-plugin's
// examples/bidirectional protocol), configured as package kit describes.
//
// Usage: counterhost18 OP...   with OP one of:
//
//	put KEY N      the host serves an AddHelper on a broker id; the plugin dials it
//	get KEY        the count
//	reverse A B    the plugin serves an AddHelper on a broker id; the host dials it
//
// Prints one JSON line: kit's report plus "results" (per OP: "value" for get and
// reverse, "broker_id" for reverse, "error" on failure). Exit 0 only if every OP
// worked.
package main

import (
	"fmt"
	"os"
	"strconv"

	"github.com/hashicorp/go-plugin"

	"gointerop.example/go18/counter"
	"gointerop.example/go18/kit"
)

func main() {
	h, err := kit.NewHost(plugin.PluginSet{counter.PluginName: &counter.Plugin{}})
	if err != nil {
		fmt.Fprintf(os.Stderr, "counterhost18: %s\n", err)
		os.Exit(2)
	}
	os.Exit(h.Finish(run(h, os.Args[1:])))
}

func number(s string) (int64, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not an integer", s)
	}
	return n, nil
}

func run(h *kit.Host, args []string) error {
	raw, err := h.Connect(counter.PluginName)
	if err != nil {
		return err
	}
	c := raw.(*counter.Client)
	var results []map[string]interface{}
	h.Report["results"] = &results
	var failed error
	for len(args) > 0 {
		r := map[string]interface{}{"op": args[0]}
		var err error
		switch {
		case args[0] == "put" && len(args) >= 3:
			var n int64
			if n, err = number(args[2]); err == nil {
				err = c.Put(args[1], n)
			}
			args = args[3:]
		case args[0] == "get" && len(args) >= 2:
			var v int64
			v, err = c.Get(args[1])
			r["value"] = v
			args = args[2:]
		case args[0] == "reverse" && len(args) >= 3:
			var a, b, v int64
			var id uint32
			if a, err = number(args[1]); err == nil {
				if b, err = number(args[2]); err == nil {
					v, id, err = c.Reverse(a, b)
					r["value"], r["broker_id"] = v, id
				}
			}
			args = args[3:]
		default:
			return fmt.Errorf("bad operation %q", args)
		}
		if err != nil {
			r["error"] = err.Error()
			if failed == nil {
				failed = fmt.Errorf("%s: %w", r["op"], err)
			}
		}
		results = append(results, r)
	}
	return failed
}
