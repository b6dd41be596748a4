package client

import (
	"context"
	"fmt"

	mifsecv1 "github.com/mifsec/mifsec/gen/mifsec/v1"
)

// maxPages bounds ListAll loops against a server that keeps returning a
// next_page_token (a bug would otherwise spin forever).
const maxPages = 100000

// maxPageSize is the largest page_size ListInterfacesRequest allows.
const maxPageSize = 1000

// ListAllInterfaces returns every interface, following next_page_token
// (AIP-158) with the largest page the API allows.
func (c *Client) ListAllInterfaces(ctx context.Context) ([]*mifsecv1.Interface, error) {
	var all []*mifsecv1.Interface
	req := &mifsecv1.ListInterfacesRequest{PageSize: maxPageSize}
	for range maxPages {
		resp, err := c.Interfaces.ListInterfaces(ctx, req)
		if err != nil {
			return nil, err
		}
		all = append(all, resp.GetInterfaces()...)
		next := resp.GetNextPageToken()
		if next == "" {
			return all, nil
		}
		if next == req.PageToken {
			return nil, fmt.Errorf("list interfaces: server returned the same page token %q twice", next)
		}
		req.PageToken = next
	}
	return nil, fmt.Errorf("list interfaces: more than %d pages", maxPages)
}
