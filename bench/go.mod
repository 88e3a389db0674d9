module github.com/zcio/zcio/bench

go 1.25.0

replace github.com/zcio/zcio => ../

require github.com/stretchr/testify v1.12.1

require go.yaml.in/yaml/v3 v3.0.5 // indirect
