package cmd

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/asr-project/asr/replica"
	"github.com/asr-project/asr/replica/hrl"
	"github.com/asr-project/asr/replica/vhd"
)

func newVHDCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "vhd", Short: "Look inside virtual disk files"}
	var format string
	inspect := &cobra.Command{
		Use:   "inspect FILE",
		Short: "Show a VHD's (or raw image's) type, sizes, parent and validity",
		Long: `Show a VHD's (or raw image's) type, virtual size, allocated bytes, parent
and validity. A malformed file exits 6 with one line naming the first bad
field and its offset; with -o json the fields that could be read are
printed first.

--format auto (the default) decides by content, then name: a valid VHD
footer makes a VHD; a known foreign format (VHDX, qcow2, VMDK, QED, VDI)
is refused; a .vhd/.avhd file without a valid footer is refused; .raw and
.img files are raw; any other name is refused. --format vhd insists on a
VHD; --format raw reads the whole file as the disk, whatever it holds. A
raw image must be a non-zero multiple of 512 bytes. FIFOs, sockets,
devices and directories are refused without being opened.`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			f, err := vhd.ParseFormat(format)
			if err != nil {
				return usageError{fmt.Errorf("--format: %w", err)}
			}
			info, err := vhd.InspectAs(args[0], f)
			return printInspect(g, args[0], info, err)
		},
	}
	inspect.Flags().StringVar(&format, "format", "auto", "how to read FILE: auto, vhd or raw")
	c.AddCommand(inspect)
	return c
}

func newHRLCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "hrl", Short: "Look inside .hrl replication logs"}
	c.AddCommand(&cobra.Command{
		Use:   "inspect FILE",
		Short: "Show an .hrl log's header fields, entries, bytes, and whether it is closed and valid",
		Long: `Show an .hrl log's header fields, entry count, data bytes, and whether it
was closed properly and passes every checksum. A corrupt or unclosed log
exits 6 with one line naming the first bad field and its offset; with
-o json the fields that could be read are printed first.`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			info, err := hrl.Inspect(args[0])
			if err := printInspect(g, args[0], info, err); err != nil {
				return err
			}
			if info.InUse {
				g.say("%s: open and in use: a running asr track is writing it; the next replicate seals it", args[0])
			}
			return nil
		},
	})
	return c
}

// printInspect prints an Info struct as JSON, or as "field: value" lines
// from its JSON form, then returns the error (as already reported in JSON).
func printInspect(g *globals, path string, info any, err error) error {
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%s: %w", path, errors.Join(replica.ErrNotFound, err))
	}
	if g.json() {
		if jerr := g.printJSON(info); jerr != nil {
			return jerr
		}
		if err != nil {
			fmt.Fprintf(g.io.Err, "asr: %s\n", oneLine(err.Error()))
			return reportedError{exitCode(err)}
		}
		return nil
	}
	if err != nil {
		return err
	}
	g.table([]string{"FIELD", "VALUE"}, jsonFields(info))
	return nil
}

// jsonFields lists a struct's fields as its JSON form names them, in order.
func jsonFields(v any) [][]string {
	data, _ := json.Marshal(v)
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var rows [][]string
	dec.Token() // {
	for dec.More() {
		k, _ := dec.Token()
		var val any
		dec.Decode(&val)
		rows = append(rows, []string{fmt.Sprint(k), fmt.Sprint(val)})
	}
	return rows
}
