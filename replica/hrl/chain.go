package hrl

import (
	"fmt"

	"github.com/google/uuid"
)

// CheckChain checks that logs form one unbroken sequence: logs[0]'s
// PreviousUniqueId is first (not checked when first is uuid.Nil) and every
// other log's PreviousUniqueId is the UniqueId of the log before it. A
// break is ErrChainBroken naming both logs' files and IDs.
func CheckChain(logs []*Log, first uuid.UUID) error {
	for i, l := range logs {
		if l == nil {
			return fmt.Errorf("hrl: CheckChain: log %d is nil: %w", i, ErrInvalid)
		}
		if i == 0 {
			if first != uuid.Nil && l.PreviousID != first {
				return errAt(l.Path, "PreviousUniqueId", hPrevID, ErrChainBroken,
					"is %s, but the disk's last applied log has UniqueId %s", l.PreviousID, first)
			}
			continue
		}
		p := logs[i-1]
		if l.PreviousID != p.ID {
			return errAt(l.Path, "PreviousUniqueId", hPrevID, ErrChainBroken,
				"is %s, but the log before it, %s, has UniqueId %s", l.PreviousID, p.Path, p.ID)
		}
	}
	return nil
}
