package cmd

// The target backends register their URL schemes.
import (
	_ "github.com/asr-project/asr/replica/target/azblob"
	_ "github.com/asr-project/asr/replica/target/file"
)
