package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/berthpaas/berth/internal/api"
)

// The team commands: organizations, members and their project grants,
// invitations.

// Organizations lists the caller's organizations.
func (c *Client) Organizations(ctx context.Context) ([]api.Membership, error) {
	var out api.MembershipList
	return out.Organizations, c.do(ctx, http.MethodGet, api.Prefix+"/organizations", nil, &out)
}

// CreateOrganization creates an organization owned by the caller.
func (c *Client) CreateOrganization(ctx context.Context, name string) (api.Membership, error) {
	var out api.Membership
	return out, c.do(ctx, http.MethodPost, api.Prefix+"/organizations", api.CreateOrganizationRequest{Name: name}, &out)
}

// OrganizationToken issues a token in another of the caller's organizations.
func (c *Client) OrganizationToken(ctx context.Context, idOrName string, in api.OrganizationTokenRequest) (api.OrganizationToken, error) {
	var out api.OrganizationToken
	return out, c.do(ctx, http.MethodPost, api.Prefix+"/organizations/"+url.PathEscape(idOrName)+"/token", in, &out)
}

// UpdateOrganization changes the current organization's settings.
func (c *Client) UpdateOrganization(ctx context.Context, in api.UpdateOrganizationRequest) (api.OrganizationDetail, error) {
	var out api.OrganizationDetail
	return out, c.do(ctx, http.MethodPut, api.Prefix+"/organization", in, &out)
}

// LeaveOrganization ends the caller's membership of the current organization.
func (c *Client) LeaveOrganization(ctx context.Context) (api.MemberRemoved, error) {
	var out api.MemberRemoved
	return out, c.do(ctx, http.MethodPost, api.Prefix+"/organization/leave", nil, &out)
}

// Members lists the organization's members.
func (c *Client) Members(ctx context.Context) ([]api.Member, error) {
	var out api.MemberList
	return out.Members, c.do(ctx, http.MethodGet, api.Prefix+"/members", nil, &out)
}

func memberPath(user string) string { return api.Prefix + "/members/" + url.PathEscape(user) }

// SetMemberRole changes a member's role.
func (c *Client) SetMemberRole(ctx context.Context, user, role string) (api.Member, error) {
	var out api.Member
	return out, c.do(ctx, http.MethodPut, memberPath(user), api.UpdateMemberRequest{Role: role}, &out)
}

// RemoveMember removes a member.
func (c *Client) RemoveMember(ctx context.Context, user string) (api.MemberRemoved, error) {
	var out api.MemberRemoved
	return out, c.do(ctx, http.MethodDelete, memberPath(user), nil, &out)
}

// TransferOwnership makes a member the owner.
func (c *Client) TransferOwnership(ctx context.Context, user string) error {
	return c.do(ctx, http.MethodPost, memberPath(user)+"/transfer-ownership", nil, nil)
}

// Grants lists a member's project grants.
func (c *Client) Grants(ctx context.Context, user string) ([]api.Grant, error) {
	var out api.GrantList
	return out.Grants, c.do(ctx, http.MethodGet, memberPath(user)+"/grants", nil, &out)
}

// SetGrant gives, changes or (role "") removes a member's grant.
func (c *Client) SetGrant(ctx context.Context, user string, in api.SetGrantRequest) ([]api.Grant, error) {
	var out api.GrantList
	return out.Grants, c.do(ctx, http.MethodPut, memberPath(user)+"/grants", in, &out)
}

// Invite invites an email with a role.
func (c *Client) Invite(ctx context.Context, in api.CreateInvitationRequest) (api.CreatedInvitation, error) {
	var out api.CreatedInvitation
	return out, c.do(ctx, http.MethodPost, api.Prefix+"/invitations", in, &out)
}

// Invitations lists the organization's invitations.
func (c *Client) Invitations(ctx context.Context) ([]api.Invitation, error) {
	var out api.InvitationList
	return out.Invitations, c.do(ctx, http.MethodGet, api.Prefix+"/invitations", nil, &out)
}

// RevokeInvitation makes an invitation's link stop working.
func (c *Client) RevokeInvitation(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, api.Prefix+"/invitations/"+url.PathEscape(id), nil, nil)
}

// LookupInvitation reads what an invitation offers (no credentials needed).
func (c *Client) LookupInvitation(ctx context.Context, token string) (api.InvitationInfo, error) {
	var out api.InvitationInfo
	return out, c.do(ctx, http.MethodGet, api.Prefix+"/invitations/lookup?token="+url.QueryEscape(token), nil, &out)
}

// AcceptInvitation accepts an invitation: signed in when the client has a
// token, else creating the invited account.
func (c *Client) AcceptInvitation(ctx context.Context, in api.AcceptInvitationRequest) (api.AcceptedInvitation, error) {
	var out api.AcceptedInvitation
	return out, c.do(ctx, http.MethodPost, api.Prefix+"/invitations/accept", in, &out)
}

func orgCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "org",
		Aliases: []string{"organization", "orgs"},
		Short:   "List, create and switch between your organizations",
		Args:    cobra.NoArgs,
	}
	cmd.AddCommand(orgListCmd(), orgCreateCmd(), orgSwitchCmd(), orgSetCmd(), orgLeaveCmd(), inviteCreateCmd("invite"))
	return cmd
}

func orgListCmd() *cobra.Command {
	return listVerb[api.Membership]{
		use: "list", short: "List your organizations; * marks the one you are using",
		header: []string{"", "NAME", "ROLE", "REQUIRES 2FA", "ID"},
		fetch: func(ctx context.Context, t *target, _ []string) ([]api.Membership, error) {
			ms, err := t.client().Organizations(ctx)
			return ms, t.authErr(err)
		},
		doc: func(ms []api.Membership) any { return api.MembershipList{Organizations: ms} },
		row: func(m api.Membership) []string {
			cur := ""
			if m.Current {
				cur = "*"
			}
			return []string{cur, printable(m.Organization.Name), m.Role, yesNo(m.RequireTwoFactor), m.Organization.ID}
		},
	}.command()
}

func orgCreateCmd() *cobra.Command {
	var flags clientFlags
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create an organization you own (switch to it with berth org switch)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := flags.resolve(true)
			if err != nil {
				return err
			}
			m, err := t.client().CreateOrganization(cmd.Context(), args[0])
			if err != nil {
				return t.authErr(err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Created organization %s (%s). Switch to it with: berth org switch %q\n", printable(m.Organization.Name), m.Organization.ID, m.Organization.Name)
			return nil
		},
	}
	flags.bind(cmd)
	return cmd
}

func orgSwitchCmd() *cobra.Command {
	var flags clientFlags
	cmd := &cobra.Command{
		Use:   "switch NAME",
		Short: "Use another of your organizations from now on",
		Long: "Switch the CLI to another organization you belong to (by name or id). An API token\n" +
			"belongs to one organization: the server issues a new one there, which is stored in\n" +
			"the CLI config as berth login does, and the previous one is revoked.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := flags.resolve(true)
			if err != nil {
				return err
			}
			tok, err := t.client().OrganizationToken(cmd.Context(), args[0], api.OrganizationTokenRequest{Name: tokenName()})
			if err != nil {
				var p *ProblemError
				if errors.As(err, &p) && p.Status == http.StatusNotFound {
					return fmt.Errorf("you are not a member of an organization named %q (see berth org list)", args[0])
				}
				return t.authErr(err)
			}
			if t.tokenFromEnv {
				// Not ours to replace: hand the token over instead.
				fmt.Fprintln(cmd.OutOrStdout(), tok.Token)
				fmt.Fprintf(cmd.ErrOrStderr(), "BERTH_TOKEN is set, so the CLI config was not changed. Above is a token in %s (shown once): put it in BERTH_TOKEN.\n", printable(tok.Organization.Name))
				return nil
			}
			previous := t.config
			if err := saveConfig(t.configPath, Config{Server: t.server, Token: tok.Token, Email: previous.Email}); err != nil {
				NewClient(t.server, tok.Token).Logout(cmd.Context())
				return err
			}
			if previous.Token != "" && previous.Server == t.server && previous.Token != tok.Token {
				NewClient(previous.Server, previous.Token).Logout(cmd.Context())
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Switched to %s (%s) as %s\n", printable(tok.Organization.Name), tok.Organization.ID, tok.Role)
			return nil
		},
	}
	flags.bind(cmd)
	return cmd
}

func orgSetCmd() *cobra.Command {
	var (
		flags      clientFlags
		require2FA bool
		name       string
	)
	cmd := &cobra.Command{
		Use:     "set",
		Short:   "Change the current organization's name or two-factor requirement",
		Example: "  berth org set --require-2fa\n  berth org set --require-2fa=false\n  berth org set --name Acme",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var req api.UpdateOrganizationRequest
			if cmd.Flags().Changed("require-2fa") {
				req.RequireTwoFactor = &require2FA
			}
			if cmd.Flags().Changed("name") {
				req.Name = &name
			}
			if req.RequireTwoFactor == nil && req.Name == nil {
				return errors.New("nothing to change: give --require-2fa or --name")
			}
			t, err := flags.resolve(true)
			if err != nil {
				return err
			}
			org, err := t.client().UpdateOrganization(cmd.Context(), req)
			if err != nil {
				return t.authErr(err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Organization %s: two-factor login required: %s\n", printable(org.Name), yesNo(org.RequireTwoFactor))
			return nil
		},
	}
	flags.bind(cmd)
	cmd.Flags().BoolVar(&require2FA, "require-2fa", false, "require two-factor login of every member (--require-2fa=false to stop)")
	cmd.Flags().StringVar(&name, "name", "", "rename the organization")
	return cmd
}

func orgLeaveCmd() *cobra.Command {
	var (
		flags clientFlags
		yes   bool
	)
	cmd := &cobra.Command{
		Use:   "leave --yes",
		Short: "Leave the current organization; your sessions and tokens for it stop working, this login included",
		Long:  "Leave the current organization. The owner cannot leave: transfer ownership first (berth member transfer).",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !yes {
				return errors.New("leaving ends your access to the organization: confirm with --yes")
			}
			t, err := flags.resolve(true)
			if err != nil {
				return err
			}
			r, err := t.client().LeaveOrganization(cmd.Context())
			if err != nil {
				return t.authErr(err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Left the organization (%d sessions ended, %d tokens revoked, this one included). Log in again, or berth org switch, for another organization.\n",
				r.EndedSessions, r.RevokedTokens)
			return nil
		},
	}
	flags.bind(cmd)
	cmd.Flags().BoolVar(&yes, "yes", false, "confirm")
	return cmd
}

func memberCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "member",
		Aliases: []string{"members"},
		Short:   "Manage the organization's members, their roles and project grants",
		Args:    cobra.NoArgs,
	}
	cmd.AddCommand(memberListCmd(), memberRoleCmd(), memberRemoveCmd(), memberTransferCmd(), memberGrantCmd(), memberGrantsCmd())
	return cmd
}

func memberListCmd() *cobra.Command {
	return listVerb[api.Member]{
		use: "list", short: "List members and their roles",
		header: []string{"EMAIL", "NAME", "ROLE", "JOINED"},
		fetch: func(ctx context.Context, t *target, _ []string) ([]api.Member, error) {
			ms, err := t.client().Members(ctx)
			return ms, t.authErr(err)
		},
		doc: func(ms []api.Member) any { return api.MemberList{Members: ms} },
		row: func(m api.Member) []string {
			return []string{m.User.Email, printable(m.User.Name), m.Role, formatTime(&m.JoinedAt)}
		},
	}.command()
}

// memberVerb is a command acting on one member, named by email.
func memberVerb(use, short string, nargs int, run func(ctx context.Context, t *target, out io.Writer, args []string) error) *cobra.Command {
	var flags clientFlags
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ExactArgs(nargs),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := flags.resolve(true)
			if err != nil {
				return err
			}
			err = run(cmd.Context(), t, cmd.OutOrStdout(), args)
			var p *ProblemError
			if errors.As(err, &p) && p.Status == http.StatusNotFound {
				return fmt.Errorf("%s (see berth member list)", p.Detail)
			}
			return t.authErr(err)
		},
	}
	flags.bind(cmd)
	return cmd
}

func memberRoleCmd() *cobra.Command {
	return memberVerb("role EMAIL ROLE", "Change a member's role (admin, developer, viewer, member)", 2, func(ctx context.Context, t *target, out io.Writer, args []string) error {
		m, err := t.client().SetMemberRole(ctx, args[0], args[1])
		if err == nil {
			fmt.Fprintf(out, "%s is now %s\n", m.User.Email, m.Role)
		}
		return err
	})
}

func memberRemoveCmd() *cobra.Command {
	return memberVerb("remove EMAIL", "Remove a member; their sessions and tokens stop working at once", 1, func(ctx context.Context, t *target, out io.Writer, args []string) error {
		r, err := t.client().RemoveMember(ctx, args[0])
		if err == nil {
			fmt.Fprintf(out, "Removed %s (ended %d sessions, revoked %d tokens)\n", args[0], r.EndedSessions, r.RevokedTokens)
		}
		return err
	})
}

func memberTransferCmd() *cobra.Command {
	return memberVerb("transfer EMAIL", "Make a member the owner; you become an admin", 1, func(ctx context.Context, t *target, out io.Writer, args []string) error {
		err := t.client().TransferOwnership(ctx, args[0])
		if err == nil {
			fmt.Fprintf(out, "%s is now the owner; you are an admin\n", args[0])
		}
		return err
	})
}

// parseProjectEnv reads PROJECT or PROJECT/ENVIRONMENT.
func parseProjectEnv(s string) (project, env string, err error) {
	project, env, _ = strings.Cut(s, "/")
	if project == "" || strings.Contains(env, "/") || strings.HasSuffix(s, "/") {
		return "", "", fmt.Errorf("%q: write PROJECT or PROJECT/ENVIRONMENT", s)
	}
	return project, env, nil
}

func memberGrantCmd() *cobra.Command {
	cmd := memberVerb("grant EMAIL PROJECT[/ENV] ROLE", "Give a member a role within a project or one environment (ROLE none removes it)", 3, func(ctx context.Context, t *target, out io.Writer, args []string) error {
		project, env, err := parseProjectEnv(args[1])
		if err != nil {
			return err
		}
		role := args[2]
		if role == "none" {
			role = ""
		}
		gs, err := t.client().SetGrant(ctx, args[0], api.SetGrantRequest{Project: project, Environment: env, Role: role})
		if err != nil {
			return err
		}
		if role == "" {
			fmt.Fprintf(out, "Removed %s's grant on %s\n", args[0], args[1])
		} else {
			fmt.Fprintf(out, "%s is %s in %s\n", args[0], role, args[1])
		}
		writeGrants(out, gs)
		return nil
	})
	cmd.Example = "  berth member grant grace@example.com shop developer\n  berth member grant grace@example.com shop/staging admin\n  berth member grant grace@example.com shop none"
	return cmd
}

func memberGrantsCmd() *cobra.Command {
	return memberVerb("grants EMAIL", "List a member's project grants", 1, func(ctx context.Context, t *target, out io.Writer, args []string) error {
		gs, err := t.client().Grants(ctx, args[0])
		if err == nil {
			writeGrants(out, gs)
		}
		return err
	})
}

func writeGrants(out io.Writer, gs []api.Grant) {
	if len(gs) == 0 {
		fmt.Fprintln(out, "No project grants.")
		return
	}
	for _, g := range gs {
		where := g.Project
		if g.Environment != "" {
			where += "/" + g.Environment
		}
		fmt.Fprintf(out, "  %s\t%s\n", where, g.Role)
	}
}

func inviteCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "invite",
		Aliases: []string{"invitation", "invitations"},
		Short:   "Invite people to the organization, and accept invitations",
		Args:    cobra.NoArgs,
	}
	cmd.AddCommand(inviteCreateCmd("create"), inviteListCmd(), inviteRevokeCmd(), inviteAcceptCmd())
	return cmd
}

// inviteCreateCmd is `berth invite create` and `berth org invite`.
func inviteCreateCmd(verb string) *cobra.Command {
	var (
		flags   clientFlags
		role    string
		project string
	)
	cmd := &cobra.Command{
		Use:   verb + " EMAIL --role ROLE [--project PROJECT[/ENVIRONMENT]]",
		Short: "Invite someone; only the link is printed on stdout",
		Long: "Invite an email to the organization with a role (admin, developer, viewer or member; at most\n" +
			"your own). With --project they join as a member who reaches only that project (or one\n" +
			"environment of it), with the role there. The link is printed alone on stdout and shown\n" +
			"only once: send it to them. It works for 7 days, once, and only for that email.",
		Example: "  berth invite create grace@example.com --role developer\n  berth org invite dev@example.com --role developer --project shop",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if role == "" {
				return errors.New("--role is required: admin, developer, viewer or member")
			}
			t, err := flags.resolve(true)
			if err != nil {
				return err
			}
			proj, env, _ := strings.Cut(project, "/")
			inv, err := t.client().Invite(cmd.Context(), api.CreateInvitationRequest{Email: args[0], Role: role, Project: proj, Environment: env})
			if err != nil {
				return t.authErr(err)
			}
			fmt.Fprintln(cmd.OutOrStdout(), inv.Link)
			where := ""
			if project != "" {
				where = " of " + project
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "Invited %s as %s%s (%s), until %s.\n", inv.Email, inv.Role, where, inv.ID, formatTime(&inv.ExpiresAt))
			switch {
			case inv.Emailed:
				fmt.Fprintf(cmd.ErrOrStderr(), "The link was emailed to %s. It is shown only once.\n", inv.Email)
			case inv.EmailError != "":
				fmt.Fprintf(cmd.ErrOrStderr(), "%s. The link is shown only once: send it to them now.\n", inv.EmailError)
			default:
				fmt.Fprintln(cmd.ErrOrStderr(), "The link is shown only once: send it to them now (this server sends no email; see --smtp-url).")
			}
			return nil
		},
	}
	flags.bind(cmd)
	cmd.Flags().StringVar(&role, "role", "", "the role they get: admin, developer, viewer or member")
	cmd.Flags().StringVar(&project, "project", "", "invite to this project (or PROJECT/ENVIRONMENT) only")
	return cmd
}

func inviteListCmd() *cobra.Command {
	return listVerb[api.Invitation]{
		use: "list", short: "List invitations (never their links)",
		header: []string{"ID", "EMAIL", "ROLE", "STATUS", "INVITED BY", "EXPIRES"},
		fetch: func(ctx context.Context, t *target, _ []string) ([]api.Invitation, error) {
			is, err := t.client().Invitations(ctx)
			return is, t.authErr(err)
		},
		doc: func(is []api.Invitation) any { return api.InvitationList{Invitations: is} },
		row: func(i api.Invitation) []string {
			return []string{i.ID, i.Email, i.Role, i.Status, i.InvitedBy, formatTime(&i.ExpiresAt)}
		},
	}.command()
}

func inviteRevokeCmd() *cobra.Command {
	var flags clientFlags
	cmd := &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke a pending invitation; its link stops working",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := flags.resolve(true)
			if err != nil {
				return err
			}
			if err := t.client().RevokeInvitation(cmd.Context(), args[0]); err != nil {
				var p *ProblemError
				if errors.As(err, &p) && p.Status == http.StatusNotFound {
					return fmt.Errorf("no pending invitation %s (see berth invite list)", args[0])
				}
				return t.authErr(err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Revoked invitation %s\n", args[0])
			return nil
		},
	}
	flags.bind(cmd)
	return cmd
}

// invitationLink reads LINK_OR_TOKEN: the token, and the server a link
// points at ("" for a bare token).
func invitationLink(arg string) (server, token string, err error) {
	arg = strings.TrimSpace(arg)
	if !strings.Contains(arg, "://") {
		return "", arg, nil
	}
	u, err := url.Parse(arg)
	if err != nil || u.Query().Get("token") == "" {
		return "", "", fmt.Errorf("%q is not an invitation link: it should end in /invitations/accept?token=…", arg)
	}
	base := *u
	base.Path, base.RawPath, base.RawQuery, base.Fragment = strings.TrimSuffix(u.Path, "/invitations/accept"), "", "", ""
	server, err = normalizeServer(base.String())
	return server, u.Query().Get("token"), err
}

func inviteAcceptCmd() *cobra.Command {
	var (
		flags             clientFlags
		name              string
		passwordFromStdin bool
	)
	cmd := &cobra.Command{
		Use:   "accept LINK_OR_TOKEN",
		Short: "Accept an invitation: with your current login, or by creating your account",
		Long: "Accept an invitation link. If the invited email has an account, log in as it first\n" +
			"(berth login); the organization is added to it. Otherwise the account is created: give\n" +
			"its password (prompted, or --password-stdin) and a --name, and the CLI is logged in to it.",
		Example: "  berth invite accept 'https://berth.example.com/invitations/accept?token=…'\n" +
			"  echo \"$PASSWORD\" | berth invite accept 'https://…' --name 'Grace Hopper' --password-stdin",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			linkServer, token, err := invitationLink(args[0])
			if err != nil {
				return err
			}
			if flags.server == "" && linkServer != "" {
				flags.server = linkServer
			}
			t, err := flags.resolve(false)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			info, err := NewClient(t.server, "").LookupInvitation(ctx, token)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if info.HasAccount {
				if t.token == "" {
					return fmt.Errorf("%s has an account: log in as it first (berth login --server %s --email %s), then run this again", info.Email, t.server, info.Email)
				}
				acc, err := t.client().AcceptInvitation(ctx, api.AcceptInvitationRequest{Token: token})
				if err != nil {
					return t.authErr(err)
				}
				fmt.Fprintf(out, "Joined %s as %s. Switch to it with: berth org switch %q\n", printable(acc.Organization.Name), acc.Role, acc.Organization.Name)
				return nil
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "Creating the account %s to join %s as %s.\n", info.Email, printable(info.Organization), info.Role)
			if name == "" && !passwordFromStdin {
				if name, err = promptLine(cmd, "Your name: "); err != nil {
					return err
				}
			}
			warnPlainHTTP(cmd, t.server)
			pw, err := readPassword(cmd, "password-stdin", passwordFromStdin, true)
			if err != nil {
				return err
			}
			acc, err := NewClient(t.server, "").AcceptInvitation(ctx, api.AcceptInvitationRequest{Token: token, Name: name, Password: pw, TokenName: tokenName()})
			if err != nil {
				return err
			}
			if acc.Token == nil {
				return errors.New("the server created the account but issued no token: log in with berth login")
			}
			if t.tokenFromEnv {
				fmt.Fprintf(out, "Joined %s as %s with the new account %s; log in with: berth login --server %s --email %s\n", printable(acc.Organization.Name), acc.Role, acc.User.Email, t.server, acc.User.Email)
				NewClient(t.server, acc.Token.Token).Logout(ctx)
				return nil
			}
			if err := saveConfig(t.configPath, Config{Server: t.server, Token: acc.Token.Token, Email: acc.User.Email}); err != nil {
				NewClient(t.server, acc.Token.Token).Logout(ctx)
				return err
			}
			fmt.Fprintf(out, "Joined %s as %s. Logged in to %s as %s\n", printable(acc.Organization.Name), acc.Role, t.server, acc.User.Email)
			return nil
		},
	}
	flags.bind(cmd)
	cmd.Flags().StringVar(&name, "name", "", "your display name, for a new account")
	cmd.Flags().BoolVar(&passwordFromStdin, "password-stdin", false, "read the new account's password from stdin")
	return cmd
}

// promptLine asks for one line on a terminal; without one it answers "".
func promptLine(cmd *cobra.Command, label string) (string, error) {
	f, ok := cmd.InOrStdin().(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return "", nil
	}
	fmt.Fprint(cmd.ErrOrStderr(), label)
	line, err := bufio.NewReader(io.LimitReader(f, 1024)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read %s: %w", strings.TrimSuffix(label, ": "), err)
	}
	return strings.TrimSpace(line), nil
}
