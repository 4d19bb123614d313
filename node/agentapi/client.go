package agentapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"

	"github.com/musubi-fabric/musubi/jobqueue/sge"
)

// Client calls an agent over its unix socket. It is safe for concurrent
// use and reuses connections.
type Client struct {
	socket string
	hc     *http.Client
}

// NewClient returns a client of the agent listening on socket.
func NewClient(socket string) *Client {
	if socket == "" {
		socket = DefaultSocket
	}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
		MaxIdleConnsPerHost: 64,
		DisableCompression:  true,
	}
	return &Client{socket: socket, hc: &http.Client{Transport: tr}}
}

// Socket is the socket path the client connects to.
func (c *Client) Socket() string { return c.socket }

// Close releases the client's idle connections.
func (c *Client) Close() { c.hc.CloseIdleConnections() }

// call posts req as JSON to path and decodes the answer into resp.
func (c *Client) call(ctx context.Context, path string, req, resp any) error {
	body, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("agentapi: encode request: %w", err)
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://agent"+path, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("agentapi: %w", err)
	}
	hr.Header.Set("Content-Type", "application/json")
	res, err := c.hc.Do(hr)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var oe *net.OpError
		if errors.As(err, &oe) && oe.Op == "dial" {
			return fmt.Errorf("%w at %s: %v", ErrUnreachable, c.socket, oe.Err)
		}
		return fmt.Errorf("%w at %s: %v", ErrUnreachable, c.socket, err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		var eb errorBody
		data, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
		if err := json.Unmarshal(data, &eb); err != nil || eb.Kind == "" {
			return &Error{Kind: KindInternal, Message: fmt.Sprintf("agent answered %s", res.Status)}
		}
		return &Error{Kind: eb.Kind, Message: eb.Message, SGE: eb.SGE}
	}
	if err := json.NewDecoder(res.Body).Decode(resp); err != nil {
		return fmt.Errorf("%w: decode answer: %v", ErrInternal, err)
	}
	return nil
}

// Whoami returns the caller as the agent identified it.
func (c *Client) Whoami(ctx context.Context) (Caller, error) {
	var out Caller
	err := c.call(ctx, pathWhoami, struct{}{}, &out)
	return out, err
}

// Submit queues jobs in one request and returns their ids in order.
func (c *Client) Submit(ctx context.Context, specs ...*sge.JobSpec) ([]int64, error) {
	var out SubmitResponse
	if err := c.call(ctx, pathSubmit, SubmitRequest{Specs: specs}, &out); err != nil {
		return nil, err
	}
	if len(out.IDs) != len(specs) {
		return out.IDs, fmt.Errorf("%w: %d ids for %d jobs", ErrInternal, len(out.IDs), len(specs))
	}
	return out.IDs, nil
}

// Wait blocks until job id has finished (qsub -sync y).
func (c *Client) Wait(ctx context.Context, id int64) ([]sge.SyncResult, error) {
	var out WaitResponse
	err := c.call(ctx, pathWait, WaitRequest{ID: id}, &out)
	return out.Results, err
}

// Jobs lists the active jobs of users (empty or "*": everyone's).
func (c *Client) Jobs(ctx context.Context, users []string) (JobsResponse, error) {
	var out JobsResponse
	err := c.call(ctx, pathJobs, JobsRequest{Users: users}, &out)
	return out, err
}

// Details returns what qstat -j shows for refs (empty: every job).
func (c *Client) Details(ctx context.Context, refs []string) (DetailsResponse, error) {
	var out DetailsResponse
	err := c.call(ctx, pathDetails, DetailsRequest{Refs: refs}, &out)
	return out, err
}

// Delete is qdel.
func (c *Client) Delete(ctx context.Context, r DeleteRequest) ([]sge.DeleteResult, error) {
	var out DeleteResponse
	err := c.call(ctx, pathDelete, r, &out)
	return out.Results, err
}

// Hold is qhold (r.Release false) and qrls.
func (c *Client) Hold(ctx context.Context, r HoldRequest) (Output, error) {
	var out Output
	err := c.call(ctx, pathHold, r, &out)
	return out, err
}

// Alter is qalter.
func (c *Client) Alter(ctx context.Context, r *sge.QalterRequest) (Output, error) {
	var out Output
	err := c.call(ctx, pathAlter, AlterRequest{Request: r}, &out)
	return out, err
}

// Accounting returns the accounting of job (an id or a name).
func (c *Client) Accounting(ctx context.Context, job string) ([]AccountedJob, error) {
	var out AccountingResponse
	err := c.call(ctx, pathAccounting, AccountingRequest{Job: job}, &out)
	return out.Jobs, err
}

// Hosts returns the host registry, and the active jobs when jobs is set.
func (c *Client) Hosts(ctx context.Context, jobs bool) (HostsResponse, error) {
	var out HostsResponse
	err := c.call(ctx, pathHosts, HostsRequest{Jobs: jobs}, &out)
	return out, err
}
