package client_test

import (
	"context"
	"fmt"
	"time"

	"github.com/mifsec/mifsec/client"
	mifsecv1 "github.com/mifsec/mifsec/gen/mifsec/v1"
)

// Dial the local daemon, register an interface and list them all. (Not run:
// it needs mifsecd.)
func ExampleDial() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, client.DefaultSocket)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	_, err = c.Interfaces.CreateInterface(ctx, &mifsecv1.CreateInterfaceRequest{
		InterfaceId: "wlan",
		Interface:   &mifsecv1.Interface{Link: "wlan0", AccessType: mifsecv1.AccessType_ACCESS_TYPE_WLAN},
	})
	if d, ok := client.Details(err); ok && err != nil {
		fmt.Println(d) // e.g. ALREADY_EXISTS: ... (reason=..., field=interface_id)
		return
	}
	ifaces, err := c.ListAllInterfaces(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, i := range ifaces {
		fmt.Println(i.GetName(), i.GetState())
	}
}
