// Package server exposes the engine over gRPC (package mifsec.v1). Each RPC
// validates its request, converts it (convert.go is the only place proto and
// engine types meet), makes one engine call, converts the result and maps
// errors to canonical codes with google.rpc.ErrorInfo.
package server

import (
	"crypto/rand"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	"github.com/mifsec/mifsec/engine"
	mifsecv1 "github.com/mifsec/mifsec/gen/mifsec/v1"
)

// Server implements the mifsec.v1 services on top of an Engine.
type Server struct {
	e      *engine.Engine
	log    hclog.Logger
	health *health.Server
	pages  pageTokens
}

// New returns a Server for e.
func New(e *engine.Engine, log hclog.Logger) *Server {
	s := &Server{e: e, log: log.Named("api"), health: health.NewServer()}
	rand.Read(s.pages.key[:])
	return s
}

// Register adds every mifsec service, health and reflection to g.
func (s *Server) Register(g *grpc.Server) {
	mifsecv1.RegisterInterfaceServiceServer(g, &interfaceService{s: s})
	mifsecv1.RegisterEventServiceServer(g, &eventService{s: s})
	mifsecv1.RegisterSecretServiceServer(g, &secretService{s: s})
	mifsecv1.RegisterPoolServiceServer(g, &poolService{s: s})
	mifsecv1.RegisterConnectionServiceServer(g, &connectionService{s: s})
	mifsecv1.RegisterSecurityAssociationServiceServer(g, &saService{s: s})
	mifsecv1.RegisterSteeringServiceServer(g, &steeringService{s: s})
	healthpb.RegisterHealthServer(g, s.health)
	reflection.Register(g)
	s.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	for name := range g.GetServiceInfo() {
		s.health.SetServingStatus(name, healthpb.HealthCheckResponse_SERVING)
	}
}

// Shutdown marks every service NOT_SERVING; call it before GracefulStop.
func (s *Server) Shutdown() { s.health.Shutdown() }
