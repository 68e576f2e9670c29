#!/usr/bin/env python3
"""Serves just enough Kubernetes API discovery for `kubectl apply --dry-run=client`."""
import json, sys
from http.server import BaseHTTPRequestHandler, HTTPServer

def res(name, kind, namespaced, singular):
    return {"name": name, "singularName": singular, "namespaced": namespaced, "kind": kind,
            "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]}

DOCS = {
    "/api": {"kind": "APIVersions", "versions": ["v1"],
             "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]},
    "/apis": {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
        {"name": g, "versions": [{"groupVersion": f"{g}/v1", "version": "v1"}],
         "preferredVersion": {"groupVersion": f"{g}/v1", "version": "v1"}}
        for g in ["apps", "rbac.authorization.k8s.io"]]},
    "/api/v1": {"kind": "APIResourceList", "groupVersion": "v1", "resources": [
        res("namespaces", "Namespace", False, "namespace"),
        res("serviceaccounts", "ServiceAccount", True, "serviceaccount"),
        res("configmaps", "ConfigMap", True, "configmap"),
        res("pods", "Pod", True, "pod")]},
    "/apis/apps/v1": {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "apps/v1", "resources": [
        res("daemonsets", "DaemonSet", True, "daemonset"),
        res("deployments", "Deployment", True, "deployment")]},
    "/apis/rbac.authorization.k8s.io/v1": {"kind": "APIResourceList", "apiVersion": "v1",
        "groupVersion": "rbac.authorization.k8s.io/v1", "resources": [
        res("clusterroles", "ClusterRole", False, "clusterrole"),
        res("clusterrolebindings", "ClusterRoleBinding", False, "clusterrolebinding"),
        res("roles", "Role", True, "role"),
        res("rolebindings", "RoleBinding", True, "rolebinding")]},
}

class H(BaseHTTPRequestHandler):
    def do_GET(self):
        doc = DOCS.get(self.path.split("?")[0])
        body = json.dumps(doc if doc else {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                            "reason": "NotFound", "code": 404}).encode()
        self.send_response(200 if doc else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass

server = HTTPServer(("127.0.0.1", 0), H)
print(server.server_address[1], flush=True)
server.serve_forever()
