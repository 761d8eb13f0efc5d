// Package cmd holds asr's cobra commands, one file per verb, and the one
// place (exit.go) that turns errors into exit codes.
//
// Commands receive their IO streams from the root (IO), so tests run them
// with buffers. Nothing here decides how replication works: commands parse
// flags, call package replica or failover, and render the result as a
// lipgloss table on a terminal, plain lines otherwise (cron), or JSON with
// --output json. asr replicate --metrics-file also writes Prometheus text
// format (metrics.go) for node_exporter's textfile collector.
//
// Configuration is resolved by viper: the --config file (default
// $XDG_CONFIG_HOME/asr/config.yaml when it exists), then ASR_* environment
// variables, then flags, the later winning. A key in the file that asr does
// not read is a usage error (config.go). Shell completion is complete.go.
package cmd
