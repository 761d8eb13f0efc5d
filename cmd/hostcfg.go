package cmd

import "github.com/asr-project/asr/replica/host"

// hostConfig is the site's host.* settings. Placeholder until merge.
func (g *globals) hostConfig() host.Config {
	return host.Config{Driver: g.v.GetString("host.driver"), Shutdown: g.v.GetString("host.shutdown"), Start: g.v.GetString("host.start"),
		Freeze: g.v.GetString("host.freeze"), Thaw: g.v.GetString("host.thaw"), Timeout: g.HostTimeout,
		TestNetwork: g.v.GetString("host.test_network"), URI: g.v.GetString("host.uri")}
}
