// Package webhook turns a git provider's webhook delivery into a deploy
// decision. It owns three pure steps that the webhook HTTP endpoint runs in
// order, with no I/O of its own:
//
//  1. Verify authenticates the raw body against the app's webhook secret
//     (GitHub, GitLab, Gitea and Bitbucket Cloud schemes, constant-time).
//  2. ParseAll (or Parse) reads the delivery into provider-neutral Events:
//     push to a branch, tag push, ping, or something ignored with a Reason.
//  3. ShouldDeploy applies the app's Filter (deploy branches, tag deploys,
//     watch paths) and says in plain words why it deploys or not.
//
// Never call Parse on a body that Verify has not accepted, and read the body
// with ReadBody (or an equivalent limit of MaxBodySize) before either.
//
// Errors map to HTTP status in the endpoint: ErrSignature → 401 with a fixed
// message (the wrapped detail is for the log only), ErrTooLarge → 413,
// ErrMalformed → 400, ErrNoSecret → 500 (the app has no secret, which is a
// bug: secrets are generated when the webhook is created). Events of Kind
// ping or other are answered 2xx with their Reason.
//
// Deduplication is not done here because it needs storage: callers must
// dedupe by (app, DeliveryID) before queuing anything. Note that delivery
// ids, like every header, are not covered by the providers' signatures, so
// deduping only absorbs the provider's own redeliveries; someone who
// captured a signed delivery can resend it under a fresh id. Queuing must
// therefore also be idempotent per (app, Commit) — a replay may at most
// redeploy a commit the provider really pushed.
//
// The repository URLs in an Event come from the payload and are for display:
// builds must fetch from the app's configured source, never from a URL a
// delivery names.
package webhook
