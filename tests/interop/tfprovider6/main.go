// Command terraform-provider-echo6 is a tiny Terraform provider on
// terraform-plugin-framework serving protocol 6, for the interop tests of
// pyvider_rpcplugin_sync's example Terraform host (HashiCorp's own providers
// that the tests build serve protocol 5).
//
// Provider "echo6" (optional attribute prefix); resource "echo6_value":
// input (required), result = prefix + input and id = "echo6-" + input (computed).
package main

import (
	"context"
	"log"

	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/provider"
	pschema "github.com/hashicorp/terraform-plugin-framework/provider/schema"
	"github.com/hashicorp/terraform-plugin-framework/providerserver"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	rschema "github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/types"
)

type echoProvider struct{}

type providerModel struct {
	Prefix types.String `tfsdk:"prefix"`
}

func (p *echoProvider) Metadata(_ context.Context, _ provider.MetadataRequest, resp *provider.MetadataResponse) {
	resp.TypeName = "echo6"
	resp.Version = "0.1.0"
}

func (p *echoProvider) Schema(_ context.Context, _ provider.SchemaRequest, resp *provider.SchemaResponse) {
	resp.Schema = pschema.Schema{
		Attributes: map[string]pschema.Attribute{
			"prefix": pschema.StringAttribute{Optional: true, Description: "Put before every result."},
		},
	}
}

func (p *echoProvider) Configure(ctx context.Context, req provider.ConfigureRequest, resp *provider.ConfigureResponse) {
	var config providerModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &config)...)
	resp.ResourceData = config.Prefix.ValueString()
}

func (p *echoProvider) Resources(context.Context) []func() resource.Resource {
	return []func() resource.Resource{func() resource.Resource { return &valueResource{} }}
}

func (p *echoProvider) DataSources(context.Context) []func() datasource.DataSource {
	return nil
}

type valueResource struct {
	prefix string
}

type valueModel struct {
	ID     types.String `tfsdk:"id"`
	Input  types.String `tfsdk:"input"`
	Result types.String `tfsdk:"result"`
}

func (r *valueResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_value"
}

func (r *valueResource) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	resp.Schema = rschema.Schema{
		Attributes: map[string]rschema.Attribute{
			"id":     rschema.StringAttribute{Computed: true},
			"input":  rschema.StringAttribute{Required: true},
			"result": rschema.StringAttribute{Computed: true},
		},
	}
}

func (r *valueResource) Configure(_ context.Context, req resource.ConfigureRequest, _ *resource.ConfigureResponse) {
	if prefix, ok := req.ProviderData.(string); ok {
		r.prefix = prefix
	}
}

func (r *valueResource) compute(m *valueModel) {
	m.ID = types.StringValue("echo6-" + m.Input.ValueString())
	m.Result = types.StringValue(r.prefix + m.Input.ValueString())
}

func (r *valueResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var m valueModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &m)...)
	r.compute(&m)
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

func (r *valueResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	var m valueModel
	resp.Diagnostics.Append(req.State.Get(ctx, &m)...)
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

func (r *valueResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var m valueModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &m)...)
	r.compute(&m)
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

func (r *valueResource) Delete(context.Context, resource.DeleteRequest, *resource.DeleteResponse) {}

func main() {
	err := providerserver.Serve(context.Background(), func() provider.Provider { return &echoProvider{} },
		providerserver.ServeOpts{Address: "registry.terraform.io/pyvider/echo6", ProtocolVersion: 6})
	if err != nil {
		log.Fatal(err)
	}
}
