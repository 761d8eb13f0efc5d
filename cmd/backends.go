package cmd

// The target backends register their URL schemes.
import (
	// azblob: re-add

	_ "github.com/asr-project/asr/replica/target/file"
)
