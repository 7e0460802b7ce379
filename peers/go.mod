module github.com/nestmmu/nestmmu/peers

go 1.26.3

replace github.com/nestmmu/nestmmu => ../

require (
	github.com/nestmmu/nestmmu v0.0.0-00010101000000-000000000000
	gvisor.dev/gvisor v0.0.0-20260905035102-160fafc42237
)

require (
	golang.org/x/arch v0.32.0 // indirect
	golang.org/x/sys v0.50.0 // indirect
	golang.org/x/time v0.15.0 // indirect
)
