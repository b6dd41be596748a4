package server

import (
	"github.com/mifsec/mifsec/engine"
	mifsecv1 "github.com/mifsec/mifsec/gen/mifsec/v1"
)

type eventService struct {
	mifsecv1.UnimplementedEventServiceServer
	s *Server
}

func (h *eventService) Watch(req *mifsecv1.WatchRequest, stream mifsecv1.EventService_WatchServer) error {
	var f engine.WatchFilter
	for _, c := range req.GetCategories() {
		ec, ok := categoryFromProto[c]
		if !ok {
			return invalid("INVALID_CATEGORY", "categories", "unknown event category "+c.String())
		}
		f.Categories = append(f.Categories, ec)
	}
	if req.GetInterface() != "" {
		id, err := parseName(req.GetInterface(), interfaces, "interface")
		if err != nil {
			return err
		}
		f.Interface = id
	}
	if req.GetConnection() != "" {
		id, err := parseName(req.GetConnection(), connections, "connection")
		if err != nil {
			return err
		}
		f.Connection = id
	}
	ctx := stream.Context()
	sub, err := h.s.e.Watch(ctx, f)
	if err != nil {
		return h.s.toStatus(err)
	}
	defer sub.Close()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-sub.C:
			if !ok {
				if err := sub.Err(); err != nil {
					return h.s.toStatus(err)
				}
				return nil
			}
			if err := stream.Send(&mifsecv1.WatchResponse{Event: eventToProto(ev)}); err != nil {
				return err
			}
		}
	}
}
