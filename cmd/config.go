package cmd

import (
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/viper"

	"github.com/asr-project/asr/replica/target/azblob"
)

// configKeys are the keys a config file may hold: every setting asr reads
// through viper (flags bound in load, host.timeout, and the backends'
// credentials read by lookup), as viper spells them: lower case, nested
// keys joined by dots.
var configKeys = append([]string{
	"state", "output", "quiet", "yes", "lock-timeout", "host.timeout"}, append(hostKeys,
	"metrics.file", "recovery.dir",
	strings.ToLower(azblob.EnvConnectionString), strings.ToLower(azblob.EnvKey),
	strings.ToLower(azblob.EnvSASToken), strings.ToLower(azblob.EnvBlobEndpoint))...)

// checkConfigKeys refuses a config file holding a key asr does not read,
// a usage error as a bad value there is: a misspelt key (outptu: json)
// would otherwise be ignored without a word. It must run right after
// ReadInConfig, before flags are bound, when v holds only the defaults
// and the file.
func checkConfigKeys(v *viper.Viper, path string) error {
	var unknown []string
	for _, k := range v.AllKeys() {
		if !slices.Contains(configKeys, k) {
			unknown = append(unknown, fmt.Sprintf("%q", k))
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	slices.Sort(unknown)
	what := "unknown key"
	if len(unknown) > 1 {
		what += "s"
	}
	return usageError{fmt.Errorf("config file %s: %s %s; known keys: %s",
		path, what, strings.Join(unknown, ", "), strings.Join(configKeys, ", "))}
}
