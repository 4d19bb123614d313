// Package api is the peer's REST/JSON API and its Go client. Every peer
// serves it, and any peer answers for the whole federation, since all
// state is in ZooKeeper. The CLI (musubi vc|account|site|topology|status)
// and the web UI use it; nothing but the peers talks to ZooKeeper.
//
// # Routes
//
//	GET    /healthz                    200 while the process serves (no auth)
//	GET    /readyz                     200 when ZooKeeper and every subsystem are ready, else 503 (no auth)
//	GET    /metrics                    Prometheus metrics (no auth)
//	GET    /api/v1/status              this peer, the sites, VC counts by phase
//	GET    /api/v1/sites               sites/ and live/
//	GET    /api/v1/topology            sites and the full mesh of links (links/ records or assumed)
//	GET    /api/v1/vcs                 reservations with their phase
//	POST   /api/v1/vcs                 reserve (ReserveRequest): 201, 409 refused (binding constraint, earliest window), 400
//	GET    /api/v1/vcs/{vc}            one reservation with its per-site progress
//	DELETE /api/v1/vcs/{vc}            cancel
//	POST   /api/v1/vcs/{vc}/release    end early (ReleaseRequest; default now)
//	GET    /api/v1/vcs/{vc}/nodes      placement merged with vc/<vc>/nodes/ records
//	GET    /api/v1/vcs/{vc}/jobs       the VC's active jobs
//	GET    /api/v1/accounts            accounts (never password hashes)
//	POST   /api/v1/accounts            add an account (Account; uid allocated when 0)
//	GET    /api/v1/accounts/{user}     one account
//	DELETE /api/v1/accounts/{user}     delete an account
//
// Errors are JSON: {"error": "...", "hint": "what to do next"} (plus
// "refusal" for a refused reservation). Bodies are decoded strictly
// (unknown fields are errors) and bounded in size (413 beyond).
//
// # Authentication and roles
//
// A request carries "Authorization: Bearer <token>". The tokens file
// (mode 0600) holds only SHA-256 hashes of tokens, each with a name and a
// role; tokens are compared in constant time. A request without a token
// over the unix socket from a root process (SO_PEERCRED) is admin; any
// other request without a valid token gets 401, and a role that lacks the
// right gets 403:
//
//	                               admin  provider     user
//	status, sites, topology        yes    yes          yes
//	list VCs, read a VC            all    all          own
//	VC nodes and jobs              all    own          own
//	reserve                        yes    yes (self)   no
//	cancel, release                all    own          no
//	list and read accounts         all    all          own
//	add and delete accounts        yes    no           no
//
// "Own" VCs are those whose reservation records the principal as owner
// (the caller of the reservation, or the owner an admin named), plus, for
// any role, the VCs listed in its token entry.
//
// # Records read and written
//
// accounts/<user> holds an Account (JSON). vc/<vc>/status/<site> is read
// as a SiteProgress: its "state" is "ready" once the site's share of the
// VC is up, "failed" when it cannot be; a VC is ready when every site of
// its placement is. vc/<vc>/nodes/<node> records are read for "state",
// "ip", "mac", "port" and "vlan".
package api
