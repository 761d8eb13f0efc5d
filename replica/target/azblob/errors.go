package azblob

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"

	"github.com/asr-project/asr/replica/target"
)

// Errors of this package; each is also wrapped with a target sentinel.
var (
	// errCopyFailed: Azure reported a server-side copy as failed or aborted.
	errCopyFailed = errors.New("blob copy failed")
	// errNotAsrDisk: a page blob lacks the asrsize metadata or disagrees with it.
	errNotAsrDisk = errors.New("blob is not an asr disk")
)

// fail turns an SDK error into a target error: the sentinel that says what
// the caller may do, a short scrubbed detail and a hint. The SDK error is
// not wrapped, so nothing reachable through errors.Unwrap can carry a
// credential; only context errors are kept for errors.Is.
func (t *Target) fail(err error, what string) error {
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("azblob: %s: %w", what, context.Canceled)
	}
	sentinel, detail := classify(err)
	detail = scrub(detail, t.secrets)
	hint := hints[sentinel]
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("azblob: %s: %s%s: %w: %w", what, detail, hint, sentinel, context.DeadlineExceeded)
	}
	return fmt.Errorf("azblob: %s: %s%s: %w", what, detail, hint, sentinel)
}

var hints = map[error]string{
	target.ErrAuth:        " (check the account key, SAS token or identity, its permissions and expiry)",
	target.ErrUnavailable: " (network, throttling or server trouble; retry later)",
}

// isAuth reports whether err is an ErrAuth.
func isAuth(err error) bool { return errors.Is(err, target.ErrAuth) }

// classify maps an error from the SDK or the network to a target sentinel
// and a one-line description.
func classify(err error) (error, string) {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return classifyResponse(re)
	}
	var afe *azidentity.AuthenticationFailedError
	if errors.As(err, &afe) || strings.Contains(err.Error(), "DefaultAzureCredential") {
		return target.ErrAuth, firstLine(err.Error())
	}
	// Dial, reset, EOF, TLS and per-try timeouts: all worth a later retry.
	return target.ErrUnavailable, firstLine(err.Error())
}

func classifyResponse(re *azcore.ResponseError) (error, string) {
	code := bloberror.Code(re.ErrorCode)
	detail := fmt.Sprintf("HTTP %d", re.StatusCode)
	if code != "" {
		detail += " " + string(code)
	}
	if re.RawResponse != nil {
		if msg := serviceMessage(re.RawResponse); msg != "" {
			detail += ": " + msg
		}
		if id := re.RawResponse.Header.Get("x-ms-request-id"); id != "" {
			detail += " (request " + id + ")"
		}
	}
	switch code {
	case bloberror.AuthenticationFailed, bloberror.AuthorizationFailure,
		bloberror.AuthorizationPermissionMismatch, bloberror.AuthorizationProtocolMismatch,
		bloberror.AuthorizationResourceTypeMismatch, bloberror.AuthorizationServiceMismatch,
		bloberror.AuthorizationSourceIPMismatch, bloberror.InsufficientAccountPermissions,
		bloberror.InvalidAuthenticationInfo, bloberror.NoAuthenticationInformation,
		bloberror.AccountIsDisabled:
		return target.ErrAuth, detail
	case bloberror.BlobNotFound, bloberror.ContainerNotFound, bloberror.ResourceNotFound:
		return target.ErrNotFound, detail
	case bloberror.BlobAlreadyExists, bloberror.ContainerAlreadyExists, bloberror.ResourceAlreadyExists,
		bloberror.TargetConditionNotMet, bloberror.PendingCopyOperation:
		return target.ErrExists, detail
	case bloberror.ServerBusy, bloberror.InternalError, bloberror.OperationTimedOut,
		bloberror.ContainerBeingDeleted, bloberror.SnapshotOperationRateExceeded,
		bloberror.ConditionNotMet: // a blob changed under a resumed read: read again
		return target.ErrUnavailable, detail
	case bloberror.InvalidPageRange, bloberror.InvalidRange, bloberror.OutOfRangeInput,
		bloberror.InvalidHeaderValue, bloberror.RequestBodyTooLarge:
		return target.ErrInvalid, detail
	}
	s := re.StatusCode
	switch {
	case s == http.StatusUnauthorized || s == http.StatusForbidden:
		return target.ErrAuth, detail
	case s == http.StatusNotFound:
		return target.ErrNotFound, detail
	case s == http.StatusConflict:
		return target.ErrExists, detail
	case s == http.StatusRequestTimeout || s == http.StatusTooManyRequests || s >= 500:
		return target.ErrUnavailable, detail
	case s >= 400:
		return target.ErrInvalid, detail
	}
	return target.ErrUnavailable, detail
}

// serviceMessage returns the first line of the <Message> of an Azure
// Storage error body ("" for HEAD responses, which have none).
func serviceMessage(resp *http.Response) string {
	body, err := runtime.Payload(resp)
	if err != nil || len(body) == 0 {
		return ""
	}
	var e struct {
		Message string `xml:"Message"`
	}
	if xml.Unmarshal(body, &e) != nil {
		return ""
	}
	msg := firstLine(e.Message)
	if len(msg) > 300 {
		msg = msg[:300] + "..."
	}
	return msg
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		s = s[:i]
	}
	return s
}

// secretParam matches credential-bearing parts of URLs and connection
// strings, whatever account they belong to.
var secretParam = regexp.MustCompile(`(?i)\b(sig|accountkey|sharedaccesssignature)=[^&;\s"'<>]*`)

// scrub removes the configured secrets and anything that looks like one.
func scrub(s string, secrets []string) string {
	for _, sec := range secrets {
		if len(sec) >= 8 {
			s = strings.ReplaceAll(s, sec, "REDACTED")
		}
	}
	return secretParam.ReplaceAllString(s, "${1}=REDACTED")
}
