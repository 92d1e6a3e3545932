package api

import (
	"context"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	"github.com/berthpaas/berth/internal/auth"
	"github.com/berthpaas/berth/internal/store"
)

// Problem types of the two-factor sign-in, in the `type` member of the
// problem document, so clients need not read the detail text.
const (
	ProblemOTPRequired = "urn:berth:problem:otp_required"
	ProblemOTPInvalid  = "urn:berth:problem:otp_invalid"
	ProblemOTPLocked   = "urn:berth:problem:otp_locked"
)

// TwoFactorStatus is the caller's two-factor login. The secret and the
// recovery codes are never shown again after enrolment.
type TwoFactorStatus struct {
	Enabled           bool `json:"enabled" doc:"Whether sign-in asks for a code from an authenticator app"`
	Pending           bool `json:"pending" doc:"An enrolment was started and waits for its confirming code"`
	RecoveryCodesLeft int  `json:"recovery_codes_left" doc:"Unused recovery codes (when enabled)"`
}

// TwoFactorEnrolment is shown once, when enrolment starts.
type TwoFactorEnrolment struct {
	Secret     string `json:"secret" example:"JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP" doc:"The TOTP secret in base32, to type into an authenticator app by hand"`
	OTPAuthURI string `json:"otpauth_uri" doc:"The otpauth:// key URI (what the QR code holds)"`
	QRCode     string `json:"qr_code" doc:"The key URI as a PNG QR code, as a data: URI"`
}

// ConfirmTwoFactorRequest completes enrolment.
type ConfirmTwoFactorRequest struct {
	OTP string `json:"otp" maxLength:"32" example:"123456" doc:"The current 6-digit code of the authenticator app"`
}

// RecoveryCodes are shown once; each signs in once in place of a code.
type RecoveryCodes struct {
	RecoveryCodes []string `json:"recovery_codes" doc:"Single-use codes, each usable once instead of an authenticator code. Store them somewhere safe: they are not shown again"`
}

// DisableTwoFactorRequest turns two-factor login off.
type DisableTwoFactorRequest struct {
	Password     string `json:"password" maxLength:"1024" doc:"The caller's password"`
	OTP          string `json:"otp,omitempty" maxLength:"32" doc:"A current authenticator code"`
	RecoveryCode string `json:"recovery_code,omitempty" maxLength:"64" doc:"A recovery code, instead of otp"`
}

// SecondFactorRequest proves the second factor again.
type SecondFactorRequest struct {
	OTP          string `json:"otp,omitempty" maxLength:"32" doc:"A current authenticator code"`
	RecoveryCode string `json:"recovery_code,omitempty" maxLength:"64" doc:"A recovery code, instead of otp"`
}

// CredentialsChanged says what a credential change revoked.
type CredentialsChanged struct {
	EndedSessions int64 `json:"ended_sessions" doc:"Other browser sessions of the user that were ended"`
	RevokedTokens int64 `json:"revoked_tokens" doc:"API tokens of the user that were revoked (all but the one making the request, if it was made with a token)"`
}

func credentialsChangedOf(r store.Revoked) CredentialsChanged {
	return CredentialsChanged{EndedSessions: r.Sessions, RevokedTokens: r.Tokens}
}

type twoFactorStatusOutput struct{ Body TwoFactorStatus }
type twoFactorEnrolmentOutput struct{ Body TwoFactorEnrolment }
type confirmTwoFactorInput struct{ Body ConfirmTwoFactorRequest }
type recoveryCodesOutput struct{ Body RecoveryCodes }
type disableTwoFactorInput struct{ Body DisableTwoFactorRequest }
type secondFactorInput struct{ Body SecondFactorRequest }
type credentialsChangedOutput struct{ Body CredentialsChanged }

func (s *server) registerTwoFactor() {
	register(s, huma.Operation{
		OperationID: "get-two-factor",
		Method:      http.MethodGet,
		Path:        Prefix + "/me/two-factor",
		Tags:        []string{"Account"},
		Summary:     "Show the caller's two-factor login",
		Description: "Whether two-factor login is enabled and how many recovery codes are left. The secret and the codes are never returned after enrolment.",
	}, s.getTwoFactor)

	register(s, huma.Operation{
		OperationID: "enrol-two-factor",
		Method:      http.MethodPost,
		Path:        Prefix + "/me/two-factor",
		Tags:        []string{"Account"},
		Summary:     "Start two-factor enrolment",
		Description: "Generates a TOTP secret (RFC 6238: SHA-1, 30 s, 6 digits) and returns it once, as base32 text, an otpauth:// URI and a QR code. " +
			"Two-factor login is not on until `POST " + Prefix + "/me/two-factor/confirm` receives a valid code. Starting again replaces an unconfirmed secret; when two-factor login is already on, the answer is 409.",
		Errors: []int{http.StatusConflict},
	}, s.enrolTwoFactor)

	register(s, huma.Operation{
		OperationID: "confirm-two-factor",
		Method:      http.MethodPost,
		Path:        Prefix + "/me/two-factor/confirm",
		Tags:        []string{"Account"},
		Summary:     "Confirm two-factor enrolment",
		Description: "Turns two-factor login on once `otp` is a current code of the new secret, and returns 10 single-use recovery codes, once. A wrong code answers 422 (field `otp`).",
		Errors:      []int{http.StatusConflict},
	}, s.confirmTwoFactor)

	register(s, huma.Operation{
		OperationID: "disable-two-factor",
		Method:      http.MethodPost,
		Path:        Prefix + "/me/two-factor/disable",
		Tags:        []string{"Account"},
		Summary:     "Turn two-factor login off",
		Description: "Needs the password and a current code (or a recovery code). Ends every other session of the user and revokes every API token of the user except the one making the request, and says how many.",
		Errors:      []int{http.StatusConflict, http.StatusTooManyRequests},
	}, s.disableTwoFactor)

	register(s, huma.Operation{
		OperationID: "regenerate-recovery-codes",
		Method:      http.MethodPost,
		Path:        Prefix + "/me/two-factor/recovery-codes",
		Tags:        []string{"Account"},
		Summary:     "Replace the recovery codes",
		Description: "Needs a current code (or a recovery code). Replaces every recovery code, used or not, with 10 new ones, returned once.",
		Errors:      []int{http.StatusConflict, http.StatusTooManyRequests},
	}, s.regenerateRecoveryCodes)
}

func (s *server) getTwoFactor(ctx context.Context, _ *struct{}) (*twoFactorStatusOutput, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	st, err := s.deps.Auth.TwoFactor(ctx, p.User.ID)
	if err != nil {
		return nil, err
	}
	return &twoFactorStatusOutput{Body: TwoFactorStatus{Enabled: st.Enabled, Pending: st.Pending, RecoveryCodesLeft: st.RecoveryCodesLeft}}, nil
}

func (s *server) enrolTwoFactor(ctx context.Context, _ *struct{}) (*twoFactorEnrolmentOutput, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	en, err := s.deps.Auth.StartTwoFactor(ctx, p)
	if err != nil {
		return nil, err
	}
	return &twoFactorEnrolmentOutput{Body: TwoFactorEnrolment{Secret: en.Secret, OTPAuthURI: en.URI, QRCode: auth.QRCodeDataURI(en.QRPNG)}}, nil
}

func (s *server) confirmTwoFactor(ctx context.Context, in *confirmTwoFactorInput) (*recoveryCodesOutput, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	codes, err := s.deps.Auth.ConfirmTwoFactor(ctx, p, in.Body.OTP)
	if err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "two-factor login enabled", "user_id", p.User.ID)
	return &recoveryCodesOutput{Body: RecoveryCodes{RecoveryCodes: codes}}, nil
}

func (s *server) disableTwoFactor(ctx context.Context, in *disableTwoFactorInput) (*credentialsChangedOutput, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	r, err := s.deps.Auth.DisableTwoFactor(ctx, p, in.Body.Password, in.Body.OTP, in.Body.RecoveryCode)
	if err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "two-factor login disabled", "user_id", p.User.ID, "ended_sessions", r.Sessions, "revoked_tokens", r.Tokens)
	return &credentialsChangedOutput{Body: credentialsChangedOf(r)}, nil
}

func (s *server) regenerateRecoveryCodes(ctx context.Context, in *secondFactorInput) (*recoveryCodesOutput, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	codes, err := s.deps.Auth.RegenerateRecoveryCodes(ctx, p, in.Body.OTP, in.Body.RecoveryCode)
	if err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "recovery codes regenerated", "user_id", p.User.ID)
	return &recoveryCodesOutput{Body: RecoveryCodes{RecoveryCodes: codes}}, nil
}
