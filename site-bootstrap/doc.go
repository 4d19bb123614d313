// Package sitebootstrap brings a site into a federation with re-runnable
// steps {Name, Check, Apply}: required packages present, ZooKeeper, Open
// vSwitch and tgt configured and running, the ensemble joined.
package sitebootstrap
