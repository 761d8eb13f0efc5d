package cmd

import "github.com/asr-project/asr/replica/host"

// hostKeys are the host.* settings besides host.timeout (ASR_HOST_*).
var hostKeys = []string{"host.driver", "host.shutdown", "host.start", "host.freeze", "host.thaw", "host.test_network", "host.uri"}

// hostConfig is the site's host driver settings.
func (g *globals) hostConfig() host.Config {
	return host.Config{Driver: g.v.GetString("host.driver"), Shutdown: g.v.GetString("host.shutdown"), Start: g.v.GetString("host.start"),
		Freeze: g.v.GetString("host.freeze"), Thaw: g.v.GetString("host.thaw"), Timeout: g.HostTimeout,
		TestNetwork: g.v.GetString("host.test_network"), URI: g.v.GetString("host.uri")}
}
