module github.com/musubi-fabric/musubi

go 1.26

require (
	antrea.io/libOpenflow v0.15.0 // indirect
	github.com/go-zookeeper/zk v1.0.4 // indirect
	github.com/ovn-kubernetes/libovsdb v0.8.1 // indirect
	golang.org/x/sync v0.12.0 // indirect
	golang.org/x/sys v0.30.0 // indirect
	golang.org/x/text v0.22.0 // indirect
)

replace antrea.io/libOpenflow => github.com/antrea-io/libOpenflow v0.15.0
