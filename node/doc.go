// Package node is the peer (musubi peer): configuration, the wiring of
// concrete implementations (the only package that does), the API server and
// its client, the reconcile loops, and the provisioning drivers under
// node/provision.
package node
