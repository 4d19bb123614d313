module github.com/musubi-fabric/musubi

go 1.26

require (
	github.com/go-zookeeper/zk v1.0.4 // indirect
	golang.org/x/sync v0.12.0 // indirect
)
