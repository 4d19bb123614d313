// Package agentapi is the local API of `musubi agent`: an HTTP/JSON service
// on a unix socket through which the Grid Engine commands (qsub, qstat,
// qdel, qhold, qrls, qalter, qhost, qacct) reach the agent of their node.
// The commands never talk to the coordination store themselves.
//
// The server learns who is calling from the socket itself (SO_PEERCRED):
// the user a request acts for is never taken from the request body, so a
// user cannot submit, delete or alter jobs as someone else. Root acts for
// anyone, like a Grid Engine manager.
//
// The package holds the wire types, the Server (which hands requests to a
// Backend, implemented by node/agent on the job queue), the Client used by
// the commands, and the pure conversions from the job queue's types to the
// view types of jobqueue/sge's formatters.
package agentapi
